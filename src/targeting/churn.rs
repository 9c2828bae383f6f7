//! Churn probability: the BG/NBD model (Fader, Hardie & Lee 2005).

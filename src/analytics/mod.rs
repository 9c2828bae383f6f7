//! Campaign analytics and A/B experiments.

//! Promo codes: generation in bulk, check characters, and normalisation of typed codes.

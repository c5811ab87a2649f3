"""autoregressive family."""

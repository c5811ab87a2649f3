"""diffusion family."""

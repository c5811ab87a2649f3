"""Normalizing flows: transforms composed into RealNVP, MAF, IAF and NSF."""

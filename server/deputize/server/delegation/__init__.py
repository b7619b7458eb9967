"""Delegation rules beyond attenuation: who may start acting for a person."""

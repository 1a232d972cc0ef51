"""Tenants and their secrets: who may call, and the Google credentials held for them."""

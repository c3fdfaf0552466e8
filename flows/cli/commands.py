"""Imports each command module so that its commands register on the app."""

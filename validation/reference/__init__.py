"""Verification reference values (package data): see README.md in this folder."""

"""HTML report templates and their stylesheet (package data)."""

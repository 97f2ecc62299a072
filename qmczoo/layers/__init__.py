"""Reusable layers. Each family is a small module with its own tests; models only wire them."""

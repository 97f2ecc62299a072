"""Ansätze: each a short file that fills slots with layers from :mod:`qmczoo.layers`."""

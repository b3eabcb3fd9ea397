"""Importers: a shop's own exports turned into landing files that fit the contract."""

"""Appliances: catalogs of downloadable base images, verified downloads, pulling into the store."""

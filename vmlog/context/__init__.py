"""Contextualisation of appliances: the data a guest reads at boot to become this project's VM."""

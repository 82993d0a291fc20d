"""The window's pages: Projects (state tree and logbook), Appliances, Releases."""

"""The state tree pane: a lane layout of the states, its item model and the painted view."""

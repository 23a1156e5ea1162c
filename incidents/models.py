"""Incidents, affected organisations, deadlines and notifications arrive with their issue."""

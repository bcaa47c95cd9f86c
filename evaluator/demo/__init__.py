"""Synthetic demo data: poster expert/prediction sets, episode tables, rendered frames."""

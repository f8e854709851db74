"""The usage dashboard: range parsing, the figures it shows, sessions, and its static page."""

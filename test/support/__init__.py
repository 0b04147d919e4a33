"""Helpers shared by test modules: private servers the tests start themselves."""

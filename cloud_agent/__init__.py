"""The cloud agent: the coordinator daemon of the hierarchy."""

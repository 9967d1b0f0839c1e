"""The watch folder: knows the API only through NemoClient."""

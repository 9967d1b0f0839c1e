"""Speaking NemoVideo: knows nothing about folders."""

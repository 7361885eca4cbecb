"""fairuse: meter a call-recording service against its Fair Usage Policy."""

__version__ = "0.1.0"

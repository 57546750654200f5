"""The coordinator: owns every copying decision, talks to one worker per terminal."""

__version__ = "0.4.0"

"""The trace on disk and what is read from it: JSON (de)serialization, diff, summary, usage."""

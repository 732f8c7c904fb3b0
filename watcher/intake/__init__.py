"""Intake: notice files in the inbox and read their bytes into pixels."""

"""The command-line client: parse, call the core, render. No boto3 here."""

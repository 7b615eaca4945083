"""The adapters: each implements one port of chalicelib/ports.py on one AWS service, taking its boto3
client (or DynamoDB table) in its constructor. services.py builds them; nothing else imports boto3."""

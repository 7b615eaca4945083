"""imgpress: everything the Lambda functions run."""

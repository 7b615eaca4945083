"""The `imgpress` command: the API's client flow from a terminal, and the Lambda's renderer run locally."""

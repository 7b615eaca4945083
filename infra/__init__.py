"""Deployment tooling for imgpress on real AWS: CloudFormation stacks around `chalice deploy`. Never shipped."""

"""The clicksentry CDK app: the whole system on AWS as one CloudFormation stack."""

"""The Lambda function that turns anomaly records into SNS alerts."""

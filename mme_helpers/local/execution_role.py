"""The role SageMaker runs as in local mode: made at bootstrap as a SageMaker execution role is
made on AWS, with a trust policy for ``sagemaker.amazonaws.com`` and a permissions policy.

The permissions are those AWS lists for an execution role of ``CreateTrainingJob`` and
``CreateModel`` (the developer guide's "SageMaker AI Roles": CloudWatch metrics, CloudWatch Logs,
ECR image pulls, the VPC network interfaces, S3), with S3 limited as ``AmazonSageMakerFullAccess``
limits it, to buckets with ``sagemaker`` in their name (the default bucket is one). The local
service does not act as the role when it reads S3; the policy is what IAM's simulator answers
from (SDK v3 checks it before training).
"""

from __future__ import annotations

import json

from .config import ROLE_NAME

POLICY_NAME = "MmeLocalSageMakerExecution"

TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}

PERMISSIONS_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "MetricsLogsImagesAndVpc",
            "Effect": "Allow",
            "Action": [
                "cloudwatch:PutMetricData",
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:DescribeLogStreams",
                "logs:PutLogEvents",
                "ecr:GetAuthorizationToken",
                "ecr:BatchCheckLayerAvailability",
                "ecr:GetDownloadUrlForLayer",
                "ecr:BatchGetImage",
                "ec2:CreateNetworkInterface",
                "ec2:CreateNetworkInterfacePermission",
                "ec2:DeleteNetworkInterface",
                "ec2:DeleteNetworkInterfacePermission",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeVpcs",
                "ec2:DescribeDhcpOptions",
                "ec2:DescribeSubnets",
                "ec2:DescribeSecurityGroups",
            ],
            "Resource": "*",
        },
        {
            "Sid": "SageMakerBuckets",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetBucketLocation", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": ["arn:aws:s3:::*sagemaker*", "arn:aws:s3:::*sagemaker*/*"],
        },
    ],
}


def ensure(iam) -> None:
    """Create the role (if missing) and put its permissions policy, through an IAM client."""
    try:
        iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(TRUST_POLICY))
    except iam.exceptions.EntityAlreadyExistsException:
        pass
    iam.put_role_policy(RoleName=ROLE_NAME, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(PERMISSIONS_POLICY))

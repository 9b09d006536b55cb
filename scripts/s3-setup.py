"""Sets up a fresh moto server for the archive: a user allowed s3:*, its
access key, and a bucket; checks that a wrong key is refused (so that the
server checks signatures); prints the environment for the tests.

Usage: s3-setup.py ENDPOINT BUCKET (run with the venv's python, which has
boto3, a dependency of moto).
"""

import sys
import time

import boto3
import botocore

endpoint, bucket = sys.argv[1], sys.argv[2]
region = "us-east-1"


def client(service, key="bootstrap", secret="bootstrap"):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    )


iam = client("iam")
deadline = time.monotonic() + 60
while True:
    try:
        iam.create_user(UserName="failwal")  # unauthenticated action 1 of 3
        break
    except botocore.exceptions.EndpointConnectionError:
        if time.monotonic() > deadline:
            sys.exit(f"s3-setup: nothing answers at {endpoint}")
        time.sleep(0.2)
iam.put_user_policy(  # 2 of 3
    UserName="failwal",
    PolicyName="archive",
    PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}',
)
key = iam.create_access_key(UserName="failwal")["AccessKey"]  # 3 of 3
s3 = client("s3", key["AccessKeyId"], key["SecretAccessKey"])
s3.create_bucket(Bucket=bucket)
try:
    client("s3", "AKIAWRONGWRONGWRONG0", "wrong").list_objects_v2(Bucket=bucket)
    sys.exit("s3-setup: the server accepted a wrong access key: signatures are not checked")
except botocore.exceptions.ClientError as e:
    if e.response["Error"]["Code"] != "InvalidAccessKeyId":
        raise

print(f"export AWS_ACCESS_KEY_ID={key['AccessKeyId']}")
print(f"export AWS_SECRET_ACCESS_KEY={key['SecretAccessKey']}")
print(f"export AWS_REGION={region}")
print(f"export AWS_ENDPOINT_URL={endpoint}")
print(f"export WAL_ARCHIVE_S3_ENDPOINT={endpoint}")
print(f"export WAL_ARCHIVE_S3_BUCKET={bucket}")

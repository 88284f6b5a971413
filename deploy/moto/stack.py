#!/usr/bin/env python3
"""Create deploy/fleet.yaml on a moto_server through CloudFormation, then fill in what moto skips.

    .venv-moto/bin/python deploy/moto/stack.py --endpoint URL --stack NAME \
        --template deploy/fleet.yaml [--region eu-west-1] [--environment-name NAME]

moto 5.2.5's CloudFormation creates most of the template's resources but silently skips some
types (no CloudFormation model: queue, bucket and topic policies, SNS subscriptions, alarms,
Application Auto Scaling) and ignores some properties of types it does create. The fleet depends
on several of those (an uploads bucket that notifies its queue, queues encrypted and redriven,
tables with PITR and TTL, DLQ alarms), and `fleet doctor` checks them. So after CREATE_COMPLETE
this script walks the template generically, by resource type: for a resource moto skipped it
makes the service call the resource stands for, with the template's own properties; for a
resource moto created it reads the properties back and sets what is missing. Ref, Fn::GetAtt,
Fn::Sub, Fn::Join, Fn::If and the rest are resolved against the stack's resources
(DescribeStackResources) and parameters. Nothing is keyed by logical id.

One type moto creates wrongly is kept out of CreateStack: AWS::ElasticLoadBalancingV2::
LoadBalancer (moto's model ignores `Type` and makes an application load balancer, and then
refuses the template's TCP listener: "Listener protocol 'TCP' must be one of 'HTTP, HTTPS'").
It, and whatever names it by Ref/GetAtt (the listener), are created here through the ELBv2 API
instead; a DependsOn on them is dropped; outputs naming them are resolved here.

Standard output: one JSON object,
    {"outputs": {...}, "filled": [{"logical_id", "type", "how"}],
     "not_applied": [{"logical_id", "type", "reason"}]}
Diagnostics go to standard error. Exit status 1 when the stack does not reach CREATE_COMPLETE
(the stack events' reasons are printed) or a fill-in call fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from typing import Any

import boto3
import yaml
from botocore.exceptions import ClientError

NO_VALUE = object()

# Types moto's CloudFormation creates wrongly; created through their API instead (see above).
CREATED_HERE = {
    "AWS::ElasticLoadBalancingV2::LoadBalancer": (
        "moto 5.2.5 ignores Type (creates an application load balancer) and then refuses the "
        "TCP listener"
    ),
}


def log(*args: Any) -> None:
    print("stack.py:", *args, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# Template loading: CloudFormation's short-form tags become the long form.
# ------------------------------------------------------------------------------------------------
class CfnLoader(yaml.SafeLoader):
    pass


def _construct(tag: str):
    name = "Ref" if tag == "Ref" else "Condition" if tag == "Condition" else f"Fn::{tag}"

    def construct(loader: yaml.Loader, node: yaml.Node) -> dict:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    return construct


for _tag in ["Ref", "GetAtt", "Sub", "Join", "If", "Not", "Equals", "And", "Or", "Select",
             "Split", "Base64", "GetAZs", "FindInMap", "ImportValue", "Condition", "Cidr"]:
    CfnLoader.add_constructor(f"!{_tag}", _construct(_tag))


def load_template(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=CfnLoader)  # noqa: S506 (SafeLoader subclass)


def references(value: Any) -> set[str]:
    """Logical ids a value names by Ref, Fn::GetAtt or ${...} in Fn::Sub."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "Ref" and isinstance(v, str):
                found.add(v)
            elif k == "Fn::GetAtt":
                found.add(v[0] if isinstance(v, list) else v.split(".")[0])
            elif k == "Fn::Sub":
                text = v[0] if isinstance(v, list) else v
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text)}
                if isinstance(v, list):
                    found |= references(v[1])
            else:
                found |= references(v)
    elif isinstance(value, list):
        for v in value:
            found |= references(v)
    return found


# ------------------------------------------------------------------------------------------------
# The stack: parameters, conditions, resources and intrinsic functions.
# ------------------------------------------------------------------------------------------------
class Stack:
    def __init__(self, session: boto3.Session, endpoint: str, region: str, template: dict,
                 params: dict[str, str], stack_name: str):
        self.session = session
        self.endpoint = endpoint
        self.region = region
        self.template = template
        self.resources: dict = template["Resources"]
        self.params = params
        self.stack_name = stack_name
        self.physical: dict[str, str] = {}
        self.clients: dict[str, Any] = {}
        self.account = self.client("sts").get_caller_identity()["Account"]
        self.conditions: dict[str, bool] = {}
        # (logical id, reason): properties a fill-in could not apply.
        self.partial: list[tuple[str, str]] = []
        self.skip_conditional_bucket_policies = False

    def client(self, service: str):
        if service not in self.clients:
            self.clients[service] = self.session.client(
                service, endpoint_url=self.endpoint, region_name=self.region)
        return self.clients[service]

    # ---- parameters and conditions ----
    def param(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": "aws",
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        spec = self.template.get("Parameters", {})[name]
        value = self.params.get(name, spec.get("Default"))
        if spec["Type"].startswith("List<") or spec["Type"] == "CommaDelimitedList":
            return [v for v in str(value).split(",") if v]
        return value

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self.conditions[name]

    def active(self, logical_id: str) -> bool:
        cond = self.resources[logical_id].get("Condition")
        return cond is None or self.condition(cond)

    # ---- intrinsic functions ----
    def resolve(self, v: Any) -> Any:
        if isinstance(v, list):
            out = [self.resolve(x) for x in v]
            return [x for x in out if x is not NO_VALUE]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (k, arg), = v.items()
            if k == "Ref":
                if arg in self.resources:
                    return self.ref(arg)
                return self.param(arg)
            if k == "Fn::GetAtt":
                logical, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.getatt(logical, attr)
            if k == "Fn::Sub":
                return self.sub(arg)
            if k == "Fn::Join":
                return str(arg[0]).join(str(x) for x in self.resolve(arg[1]))
            if k == "Fn::If":
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
            if k == "Fn::Equals":
                a, b = self.resolve(arg[0]), self.resolve(arg[1])
                return str(a) == str(b)
            if k == "Fn::Not":
                return not self.resolve(arg[0])
            if k == "Fn::And":
                return all(self.resolve(x) for x in arg)
            if k == "Fn::Or":
                return any(self.resolve(x) for x in arg)
            if k == "Condition":
                return self.condition(arg)
            if k == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if k == "Fn::Split":
                return str(self.resolve(arg[1])).split(arg[0])
        out = {}
        for key, val in v.items():
            r = self.resolve(val)
            if r is not NO_VALUE:
                out[key] = r
        return out

    def sub(self, arg: Any) -> str:
        text, extra = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
        extra = {k: self.resolve(x) for k, x in extra.items()}

        def one(m: re.Match) -> str:
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in extra:
                return str(extra[name])
            if "." in name:
                logical, attr = name.split(".", 1)
                return str(self.getatt(logical, attr))
            if name in self.resources:
                return str(self.ref(name))
            return str(self.param(name))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def ref(self, logical: str) -> str:
        rtype = self.resources[logical]["Type"]
        if rtype == "AWS::Events::EventBus":
            return self.getatt(logical, "Name")
        if logical not in self.physical:
            raise KeyError(f"{logical} ({rtype}) has no physical id yet")
        return self.physical[logical]

    def prop(self, logical: str, name: str) -> Any:
        return self.resolve(self.resources[logical].get("Properties", {}).get(name))

    def getatt(self, logical: str, attr: str) -> Any:
        rtype = self.resources[logical]["Type"]
        phys = self.physical.get(logical)
        if rtype == "AWS::SQS::Queue":
            if attr == "Arn":
                return self.client("sqs").get_queue_attributes(
                    QueueUrl=phys, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            if attr == "QueueName":
                return phys.rstrip("/").rsplit("/", 1)[-1]
            if attr == "QueueUrl":
                return phys
        if rtype == "AWS::KMS::Key" and attr == "Arn":
            return self.client("kms").describe_key(KeyId=phys)["KeyMetadata"]["Arn"]
        if rtype == "AWS::KMS::Key" and attr == "KeyId":
            return self.client("kms").describe_key(KeyId=phys)["KeyMetadata"]["KeyId"]
        if rtype == "AWS::S3::Bucket" and attr == "Arn":
            return f"arn:aws:s3:::{phys}"
        if rtype == "AWS::DynamoDB::Table" and attr == "Arn":
            return self.client("dynamodb").describe_table(TableName=phys)["Table"]["TableArn"]
        if rtype == "AWS::IAM::Role" and attr == "Arn":
            return self.client("iam").get_role(RoleName=phys)["Role"]["Arn"]
        if rtype == "AWS::SNS::Topic" and attr == "TopicArn":
            return phys
        if rtype == "AWS::SNS::Topic" and attr == "TopicName":
            return phys.rsplit(":", 1)[-1]
        if rtype == "AWS::Events::EventBus":
            name = self.prop(logical, "Name")
            if attr == "Name":
                return name
            if attr == "Arn":
                return self.client("events").describe_event_bus(Name=name)["Arn"]
        if rtype == "AWS::Events::Rule" and attr == "Arn":
            return self.client("events").describe_rule(
                Name=self.prop(logical, "Name"),
                EventBusName=self.prop(logical, "EventBusName") or "default")["Arn"]
        if rtype == "AWS::Logs::LogGroup" and attr == "Arn":
            name = self.prop(logical, "LogGroupName")
            return f"arn:aws:logs:{self.region}:{self.account}:log-group:{name}:*"
        if rtype == "AWS::ECS::Service" and attr == "Name":
            return self.prop(logical, "ServiceName")
        if rtype == "AWS::ElasticLoadBalancingV2::LoadBalancer":
            lb = self.client("elbv2").describe_load_balancers(LoadBalancerArns=[phys])
            lb = lb["LoadBalancers"][0]
            key = {"DNSName": "DNSName", "LoadBalancerFullName": None,
                   "CanonicalHostedZoneID": "CanonicalHostedZoneId"}.get(attr, attr)
            if key in lb:
                return lb[key]
        raise NotImplementedError(f"Fn::GetAtt {logical}.{attr} ({rtype})")


# ------------------------------------------------------------------------------------------------
# Fill-ins by resource type. Each returns what it did ("" when moto already had it all), or
# raises NotApplied.
# ------------------------------------------------------------------------------------------------
class NotApplied(Exception):
    pass


def _json_attr(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))


def _same_json(a: Any, b: str) -> bool:
    if a is None:
        return False
    if not isinstance(a, str):
        # moto 5.2.5 keeps a CloudFormation key policy as the template's object and answers
        # GetKeyPolicy with it unserialised: not the JSON string AWS returns.
        return False
    try:
        x, y = json.loads(a), json.loads(b)
    except ValueError:
        return a == b
    # maxReceiveCount comes back as a number or a string.
    norm = lambda d: json.loads(json.dumps(d), parse_int=str, parse_float=str)  # noqa: E731
    return norm(x) == norm(y)


SQS_SETTABLE = ["VisibilityTimeout", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds",
                "DelaySeconds", "MaximumMessageSize", "KmsMasterKeyId",
                "KmsDataKeyReusePeriodSeconds", "SqsManagedSseEnabled", "RedrivePolicy",
                "RedriveAllowPolicy", "DeduplicationScope", "FifoThroughputLimit",
                "ContentBasedDeduplication"]


def fill_sqs_queue(st: Stack, logical: str, props: dict) -> str:
    sqs = st.client("sqs")
    url = st.physical[logical]
    have = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]).get("Attributes", {})
    want: dict[str, str] = {}
    for key in SQS_SETTABLE:
        if key not in props:
            continue
        value = props[key]
        text = _json_attr(value) if isinstance(value, (dict, list)) else str(value).lower() \
            if isinstance(value, bool) else str(value)
        if key in ("RedrivePolicy", "RedriveAllowPolicy"):
            if _same_json(have.get(key), text):
                continue
        elif str(have.get(key, "")).lower() == text.lower():
            continue
        want[key] = text
    if not want:
        return ""
    sqs.set_queue_attributes(QueueUrl=url, Attributes=want)
    after = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]).get("Attributes", {})
    lost = sorted(k for k in want if k not in after)
    for k in lost:
        st.partial.append((logical, f"{k} not applied: moto 5.2.5 accepts SetQueueAttributes "
                                    f"but does not keep or report it (Unknown Attribute {k})"))
    kept = sorted(k for k in want if k not in lost)
    return ("SetQueueAttributes " + ", ".join(kept)) if kept else ""


def fill_sqs_queue_policy(st: Stack, logical: str, props: dict) -> str:
    doc = _json_attr(props["PolicyDocument"])
    for url in props["Queues"]:
        st.client("sqs").set_queue_attributes(QueueUrl=url, Attributes={"Policy": doc})
    return f"SetQueueAttributes Policy on {len(props['Queues'])} queue(s)"


def _s3_get(call, *missing_codes: str) -> Any:
    try:
        return call()
    except ClientError as e:
        if e.response["Error"]["Code"] in missing_codes:
            return None
        raise


def fill_s3_bucket(st: Stack, logical: str, props: dict) -> str:
    s3 = st.client("s3")
    b = st.physical[logical]
    done = []
    if "BucketEncryption" in props:
        have = _s3_get(lambda: s3.get_bucket_encryption(Bucket=b),
                       "ServerSideEncryptionConfigurationNotFoundError")
        want = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        rules = [{"ApplyServerSideEncryptionByDefault": {
                    k: v for k, v in r["ServerSideEncryptionByDefault"].items()},
                  **({"BucketKeyEnabled": r["BucketKeyEnabled"]}
                     if "BucketKeyEnabled" in r else {})} for r in want]
        have_rules = (have or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
        pick = lambda rs: [(r["ApplyServerSideEncryptionByDefault"],  # noqa: E731
                            bool(r.get("BucketKeyEnabled"))) for r in rs]
        if pick(have_rules) != pick(rules):
            s3.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration={"Rules": rules})
            done.append("PutBucketEncryption")
    if "PublicAccessBlockConfiguration" in props:
        want = props["PublicAccessBlockConfiguration"]
        have = _s3_get(lambda: s3.get_public_access_block(Bucket=b),
                       "NoSuchPublicAccessBlockConfiguration")
        if not have or have["PublicAccessBlockConfiguration"] != want:
            s3.put_public_access_block(Bucket=b, PublicAccessBlockConfiguration=want)
            done.append("PutPublicAccessBlock")
    if "OwnershipControls" in props:
        have = _s3_get(lambda: s3.get_bucket_ownership_controls(Bucket=b),
                       "OwnershipControlsNotFoundError")
        if not have or have["OwnershipControls"] != props["OwnershipControls"]:
            s3.put_bucket_ownership_controls(Bucket=b, OwnershipControls=props["OwnershipControls"])
            done.append("PutBucketOwnershipControls")
    if "VersioningConfiguration" in props:
        want = props["VersioningConfiguration"]["Status"]
        if s3.get_bucket_versioning(Bucket=b).get("Status") != want:
            s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": want})
            done.append("PutBucketVersioning")
    if "LifecycleConfiguration" in props:
        have = _s3_get(lambda: s3.get_bucket_lifecycle_configuration(Bucket=b),
                       "NoSuchLifecycleConfiguration")
        if not have or not have.get("Rules"):
            rules = []
            for r in props["LifecycleConfiguration"]["Rules"]:
                rule: dict[str, Any] = {"ID": r["Id"], "Status": r["Status"],
                                        "Filter": {"Prefix": r.get("Prefix", "")}}
                if "ExpirationInDays" in r:
                    rule["Expiration"] = {"Days": int(r["ExpirationInDays"])}
                if "NoncurrentVersionExpiration" in r:
                    rule["NoncurrentVersionExpiration"] = {
                        "NoncurrentDays": int(r["NoncurrentVersionExpiration"]["NoncurrentDays"])}
                if "AbortIncompleteMultipartUpload" in r:
                    rule["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": int(
                        r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])}
                rules.append(rule)
            s3.put_bucket_lifecycle_configuration(
                Bucket=b, LifecycleConfiguration={"Rules": rules})
            done.append("PutBucketLifecycleConfiguration")
    if "LoggingConfiguration" in props:
        lc = props["LoggingConfiguration"]
        have = s3.get_bucket_logging(Bucket=b).get("LoggingEnabled")
        if not have or have.get("TargetBucket") != lc["DestinationBucketName"]:
            s3.put_bucket_logging(Bucket=b, BucketLoggingStatus={"LoggingEnabled": {
                "TargetBucket": lc["DestinationBucketName"],
                "TargetPrefix": lc.get("LogFilePrefix", "")}})
            done.append("PutBucketLogging")
    if "NotificationConfiguration" in props:
        nc = props["NotificationConfiguration"]
        have = s3.get_bucket_notification_configuration(Bucket=b)
        want_queues = [{"QueueArn": q["Queue"], "Events": [q["Event"]],
                        **({"Filter": q["Filter"]} if "Filter" in q else {})}
                       for q in nc.get("QueueConfigurations", [])]
        have_queues = {(q["QueueArn"], tuple(q["Events"]))
                       for q in have.get("QueueConfigurations", [])}
        if {(q["QueueArn"], tuple(q["Events"])) for q in want_queues} != have_queues:
            if nc.get("TopicConfigurations") or nc.get("LambdaConfigurations"):
                raise NotApplied("topic/lambda notifications are not translated")
            s3.put_bucket_notification_configuration(
                Bucket=b, NotificationConfiguration={"QueueConfigurations": want_queues})
            done.append("PutBucketNotificationConfiguration")
    return ", ".join(done)


def fill_s3_bucket_policy(st: Stack, logical: str, props: dict) -> str:
    doc = props["PolicyDocument"]
    statements = doc.get("Statement", [])
    if st.skip_conditional_bucket_policies:
        dropped = [x.get("Sid", "?") for x in statements
                   if x.get("Effect") == "Deny" and "Condition" in x]
        if dropped:
            st.partial.append((logical, (
                f"statement(s) {', '.join(dropped)} left off (--skip-conditional-bucket-policies):"
                " moto 5.2.5 evaluates a bucket policy's conditions on object requests without "
                "request context, and an unmatched condition (aws:SecureTransport) denies every "
                "PutObject/GetObject (moto/iam/access_control.py, is_action_permitted)")))
            statements = [x for x in statements if x.get("Sid", "?") not in dropped]
            if not statements:
                return ""
            doc = {**doc, "Statement": statements}
    st.client("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=_json_attr(doc))
    return "PutBucketPolicy" + (" (Deny statements with conditions left off)"
                                if statements is not props["PolicyDocument"].get("Statement")
                                else "")


def fill_dynamodb_table(st: Stack, logical: str, props: dict) -> str:
    ddb = st.client("dynamodb")
    t = st.physical[logical]
    done = []
    # SSE first: moto 5.2.5 keeps SSESpecification neither from CloudFormation nor from
    # UpdateTable, only from CreateTable. The stack's table is new and empty, so it is made
    # again through CreateTable with the template's key schema and SSESpecification; PITR, TTL
    # and deletion protection are then applied to the new table below.
    table = ddb.describe_table(TableName=t)["Table"]
    sse = props.get("SSESpecification")
    if sse and sse.get("SSEEnabled"):
        have = table.get("SSEDescription", {})
        if have.get("Status") not in ("ENABLED", "UPDATING") or \
                have.get("SSEType") != sse.get("SSEType", "KMS"):
            spec = {"Enabled": True, "SSEType": sse.get("SSEType", "KMS")}
            if "KMSMasterKeyId" in sse:
                spec["KMSMasterKeyId"] = sse["KMSMasterKeyId"]
            if table.get("ItemCount", 0):
                raise SystemExit(f"stack.py: table {t} is not empty; will not recreate it")
            if table.get("DeletionProtectionEnabled"):
                ddb.update_table(TableName=t, DeletionProtectionEnabled=False)
            ddb.delete_table(TableName=t)
            create = {k: props[k] for k in ("AttributeDefinitions", "KeySchema", "BillingMode",
                                             "GlobalSecondaryIndexes", "LocalSecondaryIndexes")
                      if k in props}
            ddb.create_table(TableName=t, SSESpecification=spec, **create)
            table = ddb.describe_table(TableName=t)["Table"]
            if not table.get("SSEDescription"):
                st.partial.append((logical, "SSESpecification not applied: moto 5.2.5 reports no "
                                            "SSEDescription even after CreateTable"))
            else:
                done.append("DeleteTable + CreateTable with SSESpecification (moto keeps SSE only "
                            "from CreateTable; the new table was empty)")
    pitr = props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled")
    if pitr:
        desc = ddb.describe_continuous_backups(TableName=t)["ContinuousBackupsDescription"]
        status = desc.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus")
        if status != "ENABLED":
            ddb.update_continuous_backups(
                TableName=t,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
            done.append("UpdateContinuousBackups (PITR)")
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        desc = ddb.describe_time_to_live(TableName=t)["TimeToLiveDescription"]
        if desc.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING") or \
                desc.get("AttributeName") != ttl["AttributeName"]:
            ddb.update_time_to_live(TableName=t, TimeToLiveSpecification={
                "Enabled": True, "AttributeName": ttl["AttributeName"]})
            done.append(f"UpdateTimeToLive ({ttl['AttributeName']})")
    if props.get("DeletionProtectionEnabled") and not table.get("DeletionProtectionEnabled"):
        ddb.update_table(TableName=t, DeletionProtectionEnabled=True)
        done.append("UpdateTable DeletionProtectionEnabled")
    return ", ".join(done)


def fill_sns_topic(st: Stack, logical: str, props: dict) -> str:
    sns = st.client("sns")
    arn = st.physical[logical]
    attrs = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    if "KmsMasterKeyId" in props and attrs.get("KmsMasterKeyId") != props["KmsMasterKeyId"]:
        sns.set_topic_attributes(TopicArn=arn, AttributeName="KmsMasterKeyId",
                                 AttributeValue=props["KmsMasterKeyId"])
        return "SetTopicAttributes KmsMasterKeyId"
    return ""


def fill_sns_subscription(st: Stack, logical: str, props: dict) -> str:
    attrs = {}
    for key in ("RawMessageDelivery", "FilterPolicy", "RedrivePolicy", "FilterPolicyScope"):
        if key in props:
            v = props[key]
            attrs[key] = str(v).lower() if isinstance(v, bool) else _json_attr(v)
    out = st.client("sns").subscribe(TopicArn=props["TopicArn"], Protocol=props["Protocol"],
                                     Endpoint=props["Endpoint"], Attributes=attrs,
                                     ReturnSubscriptionArn=True)
    st.physical[logical] = out["SubscriptionArn"]
    return "Subscribe" + (f" ({', '.join(sorted(attrs))})" if attrs else "")


def fill_sns_topic_policy(st: Stack, logical: str, props: dict) -> str:
    for arn in props["Topics"]:
        st.client("sns").set_topic_attributes(TopicArn=arn, AttributeName="Policy",
                                              AttributeValue=_json_attr(props["PolicyDocument"]))
    return f"SetTopicAttributes Policy on {len(props['Topics'])} topic(s)"


def fill_cloudwatch_alarm(st: Stack, logical: str, props: dict) -> str:
    args = {k: v for k, v in props.items()}
    for k in ("Threshold",):
        if k in args:
            args[k] = float(args[k])
    for k in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
        if k in args:
            args[k] = int(args[k])
    st.client("cloudwatch").put_metric_alarm(**args)
    st.physical[logical] = props["AlarmName"]
    return "PutMetricAlarm"


def fill_events_rule(st: Stack, logical: str, props: dict) -> str:
    ev = st.client("events")
    bus = props.get("EventBusName", "default")
    have = ev.list_targets_by_rule(Rule=props["Name"], EventBusName=bus).get("Targets", [])
    want = props.get("Targets", [])
    norm = lambda ts: sorted(json.dumps(t, sort_keys=True, default=str) for t in ts)  # noqa
    if norm(have) == norm(want):
        return ""
    for t in want:
        if "RetryPolicy" in t:
            t["RetryPolicy"] = {k: int(v) for k, v in t["RetryPolicy"].items()}
    ev.put_targets(Rule=props["Name"], EventBusName=bus, Targets=want)
    return "PutTargets (with DeadLetterConfig and RetryPolicy)"


def fill_kms_key(st: Stack, logical: str, props: dict) -> str:
    kms = st.client("kms")
    key = st.physical[logical]
    done = []
    if props.get("EnableKeyRotation") and \
            not kms.get_key_rotation_status(KeyId=key).get("KeyRotationEnabled"):
        kms.enable_key_rotation(KeyId=key)
        done.append("EnableKeyRotation")
    if "KeyPolicy" in props:
        have = kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"]
        if not _same_json(have, _json_attr(props["KeyPolicy"])):
            kms.put_key_policy(KeyId=key, PolicyName="default",
                               Policy=_json_attr(props["KeyPolicy"]))
            done.append("PutKeyPolicy")
    return ", ".join(done)


def fill_log_group(st: Stack, logical: str, props: dict) -> str:
    logs = st.client("logs")
    name = props["LogGroupName"]
    groups = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    have = next((g for g in groups if g["logGroupName"] == name), {})
    done = []
    if "RetentionInDays" in props and have.get("retentionInDays") != int(props["RetentionInDays"]):
        logs.put_retention_policy(logGroupName=name, retentionInDays=int(props["RetentionInDays"]))
        done.append("PutRetentionPolicy")
    if "KmsKeyId" in props and have.get("kmsKeyId") != props["KmsKeyId"]:
        # moto 5.2.5 implements no AssociateKmsKey (HTTP 500) but takes kmsKeyId at creation:
        # the group was just created and is empty, so it is created again with the key.
        logs.delete_log_group(logGroupName=name)
        logs.create_log_group(logGroupName=name, kmsKeyId=props["KmsKeyId"])
        if "RetentionInDays" in props:
            logs.put_retention_policy(logGroupName=name,
                                      retentionInDays=int(props["RetentionInDays"]))
        done.append("DeleteLogGroup + CreateLogGroup with kmsKeyId (no AssociateKmsKey on moto)")
    return ", ".join(done)


def create_load_balancer(st: Stack, logical: str, props: dict) -> str:
    elb = st.client("elbv2")
    args = {"Name": props["Name"], "Type": props.get("Type", "application"),
            "Scheme": props.get("Scheme", "internet-facing"), "Subnets": props["Subnets"]}
    if props.get("SecurityGroups"):
        args["SecurityGroups"] = props["SecurityGroups"]
    arn = elb.create_load_balancer(**args)["LoadBalancers"][0]["LoadBalancerArn"]
    st.physical[logical] = arn
    if props.get("LoadBalancerAttributes"):
        elb.modify_load_balancer_attributes(LoadBalancerArn=arn,
                                            Attributes=props["LoadBalancerAttributes"])
    return f"CreateLoadBalancer (Type {args['Type']}), ModifyLoadBalancerAttributes"


def create_listener(st: Stack, logical: str, props: dict) -> str:
    args = {k: props[k] for k in ("LoadBalancerArn", "Protocol", "Port", "DefaultActions")}
    args["Port"] = int(args["Port"])
    arn = st.client("elbv2").create_listener(**args)["Listeners"][0]["ListenerArn"]
    st.physical[logical] = arn
    return f"CreateListener ({args['Protocol']} {args['Port']})"


FILL = {
    "AWS::SQS::Queue": fill_sqs_queue,
    "AWS::SQS::QueuePolicy": fill_sqs_queue_policy,
    "AWS::S3::Bucket": fill_s3_bucket,
    "AWS::S3::BucketPolicy": fill_s3_bucket_policy,
    "AWS::DynamoDB::Table": fill_dynamodb_table,
    "AWS::SNS::Topic": fill_sns_topic,
    "AWS::SNS::Subscription": fill_sns_subscription,
    "AWS::SNS::TopicPolicy": fill_sns_topic_policy,
    "AWS::CloudWatch::Alarm": fill_cloudwatch_alarm,
    "AWS::Events::Rule": fill_events_rule,
    "AWS::KMS::Key": fill_kms_key,
    "AWS::Logs::LogGroup": fill_log_group,
    "AWS::ElasticLoadBalancingV2::LoadBalancer": create_load_balancer,
    "AWS::ElasticLoadBalancingV2::Listener": create_listener,
}

# Types with no fill-in: why they stay unapplied on moto.
NOT_APPLIED = {
    "AWS::ApplicationAutoScaling::ScalableTarget": (
        "not created by moto's CloudFormation; scaling is not exercised on moto (no tasks run)"),
    "AWS::ApplicationAutoScaling::ScalingPolicy": (
        "not created by moto's CloudFormation; scaling is not exercised on moto (no tasks run)"),
}


# ------------------------------------------------------------------------------------------------
def order(template: dict, ids: list[str]) -> list[str]:
    """`ids` with each after the ids it references or depends on (among `ids`)."""
    res = template["Resources"]
    deps = {}
    for i in ids:
        d = references(res[i].get("Properties", {}))
        dep_on = res[i].get("DependsOn", [])
        d |= set([dep_on] if isinstance(dep_on, str) else dep_on)
        deps[i] = d & set(ids)
    out: list[str] = []
    while len(out) < len(ids):
        ready = [i for i in ids if i not in out and deps[i] <= set(out)]
        if not ready:
            raise SystemExit(f"stack.py: dependency cycle among {sorted(set(ids) - set(out))}")
        out.extend(ready)
    return out


def moto_template(template: dict) -> tuple[dict, set[str]]:
    """The template CreateStack gets: CREATED_HERE types and whatever names them by Ref/GetAtt
    left out (transitively), DependsOn on them dropped, outputs naming them left out."""
    res = template["Resources"]
    held = {i for i, r in res.items() if r["Type"] in CREATED_HERE}
    while True:
        more = {i for i, r in res.items()
                if i not in held and references(r.get("Properties", {})) & held}
        if not more:
            break
        held |= more
    out = json.loads(json.dumps(template))
    for i in held:
        del out["Resources"][i]
    for r in out["Resources"].values():
        dep = r.get("DependsOn")
        if dep is not None:
            dep = [dep] if isinstance(dep, str) else dep
            dep = [d for d in dep if d not in held]
            if dep:
                r["DependsOn"] = dep
            else:
                del r["DependsOn"]
    for k, o in list(out.get("Outputs", {}).items()):
        if references(o["Value"]) & held:
            del out["Outputs"][k]
    return out, held


def ensure_secret(sm, name: str, value: str) -> str:
    try:
        return sm.describe_secret(SecretId=name)["ARN"]
    except ClientError:
        return sm.create_secret(Name=name, SecretString=value)["ARN"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--stack", required=True)
    ap.add_argument("--template", required=True)
    ap.add_argument("--region", default="eu-west-1")
    ap.add_argument("--environment-name",
                    help="EnvironmentName parameter (default: the stack name, lowercased)")
    ap.add_argument("--skip-conditional-bucket-policies", action="store_true",
                    help="leave off bucket policies with conditions (the TLS-only ones): moto "
                         "then lets objects be read and written (it denies every object request "
                         "on a bucket whose policy has a condition); `fleet doctor`'s TLS-only "
                         "check fails on such a stack")
    a = ap.parse_args()

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    session = boto3.Session(region_name=a.region)
    env_name = a.environment_name or a.stack.lower()
    template = load_template(a.template)

    mk = lambda s: session.client(s, endpoint_url=a.endpoint, region_name=a.region)  # noqa
    ec2, cf, sm = mk("ec2"), mk("cloudformation"), mk("secretsmanager")
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        log("moto has no default VPC in", a.region)
        return 1
    vpc = vpcs[0]["VpcId"]
    subnets = [s["SubnetId"] for s in ec2.describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]]
    # The gateway's TLS material: dummy PEM-shaped secrets (nothing runs the gateway's task here).
    pem = "-----BEGIN {0}-----\nbW90bw==\n-----END {0}-----\n"
    params = {
        "EnvironmentName": env_name,
        "VpcId": vpc,
        "SubnetIds": ",".join(subnets[:2]),
        "ImageUri": "example.invalid/fleet:moto",
        "MllpTlsCertSecretArn": ensure_secret(sm, f"{env_name}-mllp-tls-cert",
                                              pem.format("CERTIFICATE")),
        "MllpTlsKeySecretArn": ensure_secret(sm, f"{env_name}-mllp-tls-key",
                                             pem.format("PRIVATE KEY")),
    }
    declared = template.get("Parameters", {})
    params = {k: v for k, v in params.items() if k in declared}

    body, held = moto_template(template)
    log(f"CreateStack {a.stack} (EnvironmentName={env_name}); created here instead of by moto:",
        ", ".join(sorted(held)) or "none")
    try:
        cf.create_stack(StackName=a.stack, TemplateBody=json.dumps(body),
                        Parameters=[{"ParameterKey": k, "ParameterValue": v}
                                    for k, v in params.items()],
                        Capabilities=["CAPABILITY_NAMED_IAM"])
    except ClientError as e:
        log("CreateStack failed:", e)
        return 1
    status = ""
    for _ in range(300):
        stack = cf.describe_stacks(StackName=a.stack)["Stacks"][0]
        status = stack["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            break
        time.sleep(0.2)
    if status != "CREATE_COMPLETE":
        log(f"stack {a.stack} is {status}: {stack.get('StackStatusReason', '')}")
        for ev in cf.describe_stack_events(StackName=a.stack)["StackEvents"]:
            if ev.get("ResourceStatusReason"):
                log(f"  {ev['LogicalResourceId']} {ev['ResourceStatus']}: "
                    f"{ev['ResourceStatusReason']}")
        return 1

    st = Stack(session, a.endpoint, a.region, template, params, a.stack)
    st.skip_conditional_bucket_policies = a.skip_conditional_bucket_policies
    # moto lists the resources it skipped too, without a logical id; an event bus it created
    # has a logical id but no physical id (see Stack.ref).
    created_by_moto = set()
    for r in cf.describe_stack_resources(StackName=a.stack)["StackResources"]:
        if r.get("LogicalResourceId"):
            created_by_moto.add(r["LogicalResourceId"])
            if r.get("PhysicalResourceId"):
                st.physical[r["LogicalResourceId"]] = r["PhysicalResourceId"]

    filled, not_applied = [], []
    active = [i for i in template["Resources"] if st.active(i)]
    # Resource policies first: moto, like S3, checks the access-log bucket's policy when a bucket
    # turns on logging to it.
    policies = [i for i in active if template["Resources"][i]["Type"].endswith("Policy")
                and not template["Resources"][i]["Type"].startswith("AWS::ApplicationAutoScaling")]
    rest = [i for i in active if i not in policies]
    for logical in order(template, policies) + order(template, rest):
        rtype = template["Resources"][logical]["Type"]
        skipped = logical not in created_by_moto
        if skipped and logical not in held and rtype not in FILL and rtype not in NOT_APPLIED:
            not_applied.append({"logical_id": logical, "type": rtype,
                                "reason": "not created by moto's CloudFormation; no fill-in"})
            continue
        if rtype in NOT_APPLIED and skipped:
            not_applied.append({"logical_id": logical, "type": rtype,
                                "reason": NOT_APPLIED[rtype]})
            continue
        if rtype not in FILL:
            continue
        try:
            props = st.resolve(template["Resources"][logical].get("Properties", {}))
            how = FILL[rtype](st, logical, props)
        except NotApplied as e:
            not_applied.append({"logical_id": logical, "type": rtype, "reason": str(e)})
            continue
        except (ClientError, KeyError, NotImplementedError) as e:
            log(f"filling {logical} ({rtype}) failed: {e}")
            return 1
        if how:
            if logical in held:
                why = CREATED_HERE.get(rtype, "names a resource created here")
                how = f"{how} (kept out of CreateStack: {why})"
            elif skipped:
                how = f"{how} (moto's CloudFormation skips {rtype})"
            filled.append({"logical_id": logical, "type": rtype, "how": how})

    for logical, reason in st.partial:
        not_applied.append({"logical_id": logical, "type": template["Resources"][logical]["Type"],
                            "reason": reason})
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    for key, o in template.get("Outputs", {}).items():
        if key not in outputs:
            outputs[key] = st.resolve(o["Value"])
    json.dump({"outputs": outputs, "filled": filled, "not_applied": not_applied},
              sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

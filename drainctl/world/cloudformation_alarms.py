"""`AWS::CloudWatch::Alarm` through the local AWS's CloudFormation.

moto 5's CloudFormation knows no alarm resource (it creates a stack and skips the alarm), so a
stack's alarms could not be listed nor fired. This model adds it, as AWS documents it: `Ref` is
the alarm's name (the physical id `ListStackResources` reports), `Fn::GetAtt Arn` its ARN, a
missing `AlarmName` is generated from the stack, and deleting the stack deletes the alarm.
https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-cloudwatch-alarm.html

Only single-metric alarms (Namespace, MetricName, Statistic, ...) are modelled; an alarm on
metric math (`Metrics`) is refused, not silently created as something else.
"""

from __future__ import annotations

from typing import Any

from moto.cloudformation import parsing
from moto.cloudwatch.models import CloudWatchBackend, cloudwatch_backends
from moto.core.common_models import CloudFormationModel

__all__ = ["CloudFormationAlarm", "UnsupportedAlarmError"]


class UnsupportedAlarmError(Exception):
    """An alarm this model does not create (metric math)."""


class CloudFormationAlarm(CloudFormationModel):
    """One alarm of a stack, kept by moto's CloudWatch backend."""

    def __init__(self, account_id: str, region_name: str, name: str) -> None:
        self.account_id = account_id
        self.region_name = region_name
        self.name = name

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @staticmethod
    def cloudformation_name_type() -> str:
        return "AlarmName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudWatch::Alarm"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name: str) -> str:
        if attribute_name != "Arn":
            raise KeyError(attribute_name)
        return f"arn:aws:cloudwatch:{self.region_name}:{self.account_id}:alarm:{self.name}"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> CloudFormationAlarm:
        properties = cloudformation_json["Properties"]
        if "Metrics" in properties:
            raise UnsupportedAlarmError(f"{resource_name}: metric math alarms are not modelled locally")
        name = properties.get("AlarmName") or resource_name
        _backend(account_id, region_name).put_metric_alarm(
            name=name,
            namespace=properties["Namespace"],
            metric_name=properties["MetricName"],
            comparison_operator=properties["ComparisonOperator"],
            evaluation_periods=int(properties["EvaluationPeriods"]),
            period=int(properties["Period"]),
            threshold=float(properties["Threshold"]),
            statistic=properties.get("Statistic", ""),
            description=properties.get("AlarmDescription", ""),
            dimensions=[{"name": d["Name"], "value": d["Value"]} for d in properties.get("Dimensions", [])],
            alarm_actions=list(properties.get("AlarmActions", [])),
            ok_actions=list(properties.get("OKActions", [])),
            insufficient_data_actions=list(properties.get("InsufficientDataActions", [])),
            treat_missing_data=properties.get("TreatMissingData"),
        )
        return cls(account_id, region_name, name)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: CloudFormationAlarm,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> CloudFormationAlarm:
        _backend(account_id, region_name).delete_alarms([original_resource.name])
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )

    @classmethod
    def delete_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> None:
        _backend(account_id, region_name).delete_alarms([resource_name])


def _backend(account_id: str, region_name: str) -> CloudWatchBackend:
    return cloudwatch_backends[account_id][region_name]


# moto lists its CloudFormation models once (cached); forget a list made before this one existed.
parsing.get_model_list.cache_clear()
parsing.get_model_map.cache_clear()
parsing.get_name_type_map.cache_clear()

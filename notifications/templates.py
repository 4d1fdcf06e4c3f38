"""Message templates per locale. Keys are template names; `{placeholders}` come from the
notification's params."""

from __future__ import annotations

from typing import Any

TEMPLATES: dict[str, dict[str, tuple[str, str]]] = {
    # A brand announcement (kind `marketing`): the text comes whole from the campaign.
    "announcement": {
        "zh-CN": ("{headline}", "{message}"),
        "en": ("{headline}", "{message}"),
    },
    "vehicle_verified": {
        "zh-CN": ("车辆认证成功", "您的 {model}（VIN {vin}）已通过车主认证。"),
        "en": ("Vehicle verified", "Your {model} (VIN {vin}) is now verified."),
    },
    "points_earned": {
        "zh-CN": ("获得积分", "您获得了 {points} 积分：{reason}。"),
        "en": ("Points earned", "You earned {points} points: {reason}."),
    },
    "points_expiring": {
        "zh-CN": ("积分即将过期", "您有 {points} 积分将于 {expires_on} 过期，请尽快使用。"),
        "en": ("Points expiring soon", "{points} of your points expire on {expires_on}."),
    },
}


def render(template: str, locale: str, params: dict[str, Any]) -> tuple[str, str]:
    variants = TEMPLATES[template]
    title, body = variants.get(locale) or variants["zh-CN"]
    return title.format(**params), body.format(**params)

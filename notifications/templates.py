"""Message templates per locale. Keys are template names; `{placeholders}` come from the
notification's params."""

from __future__ import annotations

from typing import Any

from accounts.services import LOCALES

TEMPLATES: dict[str, dict[str, tuple[str, str]]] = {
    # A brand announcement (kind `marketing`): the text comes whole from the campaign.
    "announcement": {
        "zh-CN": ("{headline}", "{message}"),
        "en": ("{headline}", "{message}"),
    },
    # Sent straight to the provider (`services.send_reset_code`), never kept in the inbox.
    "password_reset_code": {
        "zh-CN": ("重置密码验证码", "验证码 {code}，{minutes} 分钟内有效。如非本人操作，请忽略。"),
        "en": (
            "Password reset code",
            "Your code is {code}, valid for {minutes} minutes. Not you? Ignore this message.",
        ),
    },
    "vehicle_verified": {
        "zh-CN": ("车辆认证成功", "您的 {model}（VIN {vin}）已通过车主认证。"),
        "en": ("Vehicle verified", "Your {model} (VIN {vin}) is now verified."),
    },
    "points_earned": {
        "zh-CN": ("获得积分", "您获得了 {points} 积分：{reason}。"),
        "en": ("Points earned", "You earned {points} points: {reason}."),
    },
    "points_reversed": {
        "zh-CN": ("积分已撤回", "{points} 积分已撤回：{reason}。"),
        "en": ("Points taken back", "{points} points were taken back: {reason}."),
    },
    "points_adjusted": {
        "zh-CN": ("积分调整", "您的积分调整了 {points:+d}：{reason}。"),
        "en": ("Points adjusted", "Your points were adjusted by {points:+d}: {reason}."),
    },
    "points_expiring": {
        "zh-CN": ("积分即将过期", "您有 {points} 积分将于 {expires_on} 过期，请尽快使用。"),
        "en": ("Points expiring soon", "{points} of your points expire on {expires_on}."),
    },
    "event_cancelled": {
        "zh-CN": ("活动已取消", "您报名的活动「{title}」（{starts_at}）已取消：{reason}"),
        "en": ("Event cancelled", "{title} ({starts_at}) has been cancelled: {reason}"),
    },
    "registration_promoted": {
        "zh-CN": ("候补成功", "有名额空出，您已确认参加「{title}」，{starts_at}，{venue}。"),
        "en": (
            "You have a place",
            "A place came free: you are confirmed for {title}, {starts_at} at {venue}.",
        ),
    },
    # A drop's outcome, told to each entrant once their entry is decided (`drops`).
    "drop_won": {
        "zh-CN": ("抢到了", "您参与的「{title}」抢购中选了，请在「我的」中查看。"),
        "en": ("You got it", "Your entry in the drop of {title} won: see it in your account."),
    },
    "drop_lost": {
        "zh-CN": ("未中选", "「{title}」已全部发放，您的参与未中选，为此冻结的积分已释放。"),
        "en": (
            "Not this time",
            "The drop of {title} is all given out and your entry did not win; any points"
            " held for it are yours again.",
        ),
    },
    "drop_refused": {
        "zh-CN": ("参与未生效", "您在「{title}」中的参与未能生效（{reason}），名额已顺延。"),
        "en": (
            "Entry not served",
            "Your entry in the drop of {title} could not be served ({reason}); its place"
            " passed on.",
        ),
    },
    "event_reminder_24h": {
        "zh-CN": ("活动明天开始", "「{title}」将于 {starts_at} 在 {venue} 开始。"),
        "en": ("Your event is tomorrow", "{title} starts {starts_at} at {venue}."),
    },
    "event_reminder_2h": {
        "zh-CN": ("活动即将开始", "「{title}」将于 {starts_at} 在 {venue} 开始，别迟到哦。"),
        "en": ("Your event starts soon", "{title} starts {starts_at} at {venue}."),
    },
    "post_commented": {
        "zh-CN": ("新评论", "有人评论了您的帖子。"),
        "en": ("New comment", "Someone commented on your post."),
    },
    "moderation_action": {
        "zh-CN": ("社区管理通知", "管理员对您的内容或账号执行了操作（{action}）：{reason}"),
        "en": ("Community moderation", "A moderator took an action ({action}): {reason}"),
    },
    "moderation_undone": {
        "zh-CN": ("管理操作已撤销", "此前对您的内容或账号的操作（{action}）已撤销：{reason}"),
        "en": ("Moderation undone", "The earlier action ({action}) was undone: {reason}"),
    },
    "report_resolved": {
        "zh-CN": ("举报处理结果", "您的举报已处理（{outcome}）：{reason}"),
        "en": ("Your report was reviewed", "Your report was {outcome}: {reason}"),
    },
}


def render(template: str, locale: str, params: dict[str, Any]) -> tuple[str, str]:
    """A param may itself be per locale (`{"zh-CN": ..., "en": ...}`), as a points reason
    is: the owner reads it in their language too."""
    variants = TEMPLATES[template]
    title, body = variants.get(locale) or variants["zh-CN"]
    values = {key: _in_locale(value, locale) for key, value in params.items()}
    return title.format(**values), body.format(**values)


def _in_locale(value: Any, locale: str) -> Any:
    if isinstance(value, dict) and value and set(value) <= set(LOCALES):
        return value.get(locale) or value.get("zh-CN") or next(iter(value.values()))
    return value

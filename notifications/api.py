"""The owner's inbox and notification preferences over HTTP."""

from __future__ import annotations

from flask.views import MethodView

from app.auth import caller
from app.web import Blueprint, page_of, paginate
from notifications import services
from notifications.schemas import (
    InboxArgsSchema,
    NotificationSchema,
    PreferencesSchema,
    PreferencesUpdateSchema,
)

notifications = Blueprint(
    "notifications", __name__, description="The owner's inbox and notification preferences"
)
blueprints = (notifications,)


@notifications.route("/me/notifications")
class Inbox(MethodView):
    @notifications.arguments(InboxArgsSchema, location="query")
    @notifications.response(200, page_of(NotificationSchema))
    def get(self, args):
        """The caller's notifications, newest first"""
        return paginate(
            services.inbox(caller().user.pk, args["unread"]), args["cursor"], args["limit"]
        )


@notifications.route("/me/notifications/<notification_id>/read")
class ReadNotification(MethodView):
    @notifications.response(204)
    def post(self, notification_id):
        """Mark one notification read"""
        services.mark_read(caller().user.pk, notification_id)


@notifications.route("/me/notifications/read-all")
class ReadAllNotifications(MethodView):
    @notifications.response(204)
    def post(self):
        """Mark every notification of the caller read"""
        services.mark_all_read(caller().user.pk)


@notifications.route("/me/notification-preferences")
class Preferences(MethodView):
    @notifications.response(200, PreferencesSchema)
    def get(self):
        """Channels (in_app, push) per kind (events, points, community, marketing, account)"""
        return services.preferences(caller().user.pk)

    @notifications.arguments(PreferencesUpdateSchema)
    @notifications.response(200, PreferencesSchema)
    def put(self, changes):
        """Change channels per kind; kinds and channels left out keep their value"""
        return services.update_preferences(caller().user.pk, changes)

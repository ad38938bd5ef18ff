"""Dashboard page."""
from __future__ import annotations

from flask import render_template
from flask_login import current_user, login_required

from app.web import bp, service


@bp.get("/")
@login_required
def dashboard():
    """Counts by status and what happened recently."""
    return render_template("web/dashboard.html", **service.dashboard_summary(current_user))

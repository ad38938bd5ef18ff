"""Login, logout and the API-token settings page."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user, login_required, login_user, logout_user

from app import i18n
from app.auth import service, throttle
from app.errors import StudioError
from app.extensions import get_job_context, get_redis, get_settings
from app.htmx import is_htmx
from app.jobs.backends.kaggle import accounts
from app.jobs.backends.kaggle.linking import link_checked
from app.security import client_key, expensive
from app.web.auth.forms import ConfirmForm, KaggleAccountForm, LoginForm, TokenForm

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
@expensive
def login():
    """Show the login form; sign the user in on valid credentials."""
    if current_user.is_authenticated:
        return redirect(url_for("web.dashboard"))
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = service.sign_in(get_redis(), form.email.data, form.password.data, login_client(form.email.data))
        except throttle.LoginThrottled as throttled:
            form.password.errors.append(ngettext(
                "Too many failed sign-ins for this account; try again in %(num)d second.",
                "Too many failed sign-ins for this account; try again in %(num)d seconds.", throttled.retry_after))
            return render_template("auth/login.html", form=form), 429, {"Retry-After": str(throttled.retry_after)}
        if user is not None:
            chosen = i18n.remembered_choice()
            session.clear()  # nothing from before the login survives into the signed-in session, but the language
            i18n.keep_choice(chosen)
            login_user(user)
            if chosen and chosen != user.locale:  # chosen on the sign-in page: the newest choice wins
                i18n.save_user_locale(user, chosen)
            return remember_device(redirect(safe_next_url(request.args.get("next"))), user.email)
        form.password.errors.append(_("Wrong email or password."))
    status = 422 if form.errors else 200
    return render_template("auth/login.html", form=form), status


def login_client(email: str) -> str:
    """Who a sign-in attempt counts against: this browser, if it signed in to the account before, else its address."""
    return throttle.client_id(current_app.secret_key, request.cookies.get(throttle.DEVICE_COOKIE), email,
                              client_key())


def remember_device(response, email: str):
    """Give the browser a device cookie for the account, so a stranger's failures never slow it down."""
    response.set_cookie(throttle.DEVICE_COOKIE, throttle.device_cookie(current_app.secret_key, email),
                        max_age=throttle.DEVICE_COOKIE_SECONDS, path=url_for("auth.login"), httponly=True,
                        secure=current_app.config["SESSION_COOKIE_SECURE"], samesite="Lax")
    return response


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out and forget the session."""
    chosen = i18n.remembered_choice()
    logout_user()
    session.clear()
    i18n.keep_choice(chosen)
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/settings/tokens", methods=["GET"])
@login_required
def tokens():
    """List the user's API tokens with a form to create one."""
    return render_tokens(TokenForm())


@bp.route("/settings/tokens", methods=["POST"])
@login_required
@expensive
def create_token():
    """Create a token and show its plaintext once."""
    form = TokenForm()
    if not form.validate_on_submit():
        return render_tokens(form, status=422)
    token, plaintext = service.create_token(current_user, form.name.data)
    return render_tokens(TokenForm(formdata=None), new_token=plaintext, new_token_name=token.name)


@bp.route("/settings/tokens/<int:token_id>/revoke", methods=["POST"])
@login_required
def revoke_token(token_id: int):
    """Revoke one token; htmx gets the updated row, a browser the page."""
    token = service.revoke_token(current_user, token_id)
    if is_htmx():
        return render_template("auth/_token_row.html", token=token, confirm=ConfirmForm())
    flash(_("Token “%(name)s” revoked.", name=token.name), "success")
    return redirect(url_for("auth.tokens"))


def render_tokens(form: TokenForm, status: int = 200, **extra):
    """The tokens page, or just its panel for htmx."""
    template = "auth/_tokens_panel.html" if is_htmx() else "auth/tokens.html"
    context = dict(form=form, tokens=service.list_tokens(current_user), confirm=ConfirmForm(), **extra)
    return render_template(template, **context), status


@bp.route("/settings/kaggle", methods=["GET"])
@login_required
def kaggle_account():
    """The user's Kaggle account: linked or not (never the key), the form to link one."""
    return render_kaggle(KaggleAccountForm())


@bp.route("/settings/kaggle", methods=["POST"])
@login_required
@expensive
def link_kaggle_account():
    """Check the credentials with Kaggle and link them; the form again, with Kaggle's refusal, otherwise."""
    form = KaggleAccountForm()
    if not form.validate_on_submit():
        return render_kaggle(form, status=422)
    payload = {name: getattr(form, name).data for name in ("username", "key", "token") if getattr(form, name).data}
    try:
        account = link_checked(get_job_context(), current_user, payload)
    except StudioError as error:
        for name, problem in (error.details or {}).items():
            getattr(form, name, form.key).errors.append(problem)
        return render_kaggle(form, status=error.status, problem=error.message)
    flash(_("Kaggle account %(name)s linked.", name=account.username), "success")
    return redirect(url_for("auth.kaggle_account"))


@bp.route("/settings/kaggle/unlink", methods=["POST"])
@login_required
def unlink_kaggle_account():
    """Forget the user's Kaggle account."""
    if ConfirmForm().validate_on_submit():
        accounts.unlink(current_user)
        flash(_("Kaggle account unlinked."), "success")
    return redirect(url_for("auth.kaggle_account"))


def render_kaggle(form: KaggleAccountForm, status: int = 200, **extra):
    """The Kaggle account page."""
    link = accounts.link_view(current_user, get_settings())
    return render_template("auth/kaggle.html", form=form, link=link, confirm=ConfirmForm(), **extra), status


def safe_next_url(target: str | None) -> str:
    """target when it is a path on this site, else the dashboard (no open redirects)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("web.dashboard")

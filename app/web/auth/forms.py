"""Forms of the account pages; Flask-WTF adds the CSRF token to each."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length, Optional


class LoginForm(FlaskForm):
    """Email and password."""

    email = EmailField(_l("Email"), validators=[DataRequired(_l("Enter your email.")), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(_l("Enter your password.")), Length(max=1024)])


class TokenForm(FlaskForm):
    """The name of a new API token."""

    name = StringField(_l("Token name"), validators=[
        DataRequired(_l("Name the token.")), Length(max=100, message=_l("Keep the name under %(max)d characters."))])


class KaggleAccountForm(FlaskForm):
    """A Kaggle user name and API key, or an access token (the service checks which was given)."""

    username = StringField(_l("Kaggle user name"), validators=[Optional(), Length(max=64)])
    key = PasswordField(_l("API key"), validators=[Optional(), Length(max=4096)])
    token = PasswordField(_l("or an access token"), validators=[Optional(), Length(max=4096)])


class ConfirmForm(FlaskForm):
    """A bare form: just the CSRF token, for buttons that change state."""

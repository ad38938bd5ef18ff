"""Forms of the account pages; Flask-WTF adds the CSRF token to each."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length, Optional


class LoginForm(FlaskForm):
    """Email and password."""

    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class TokenForm(FlaskForm):
    """The name of a new API token."""

    name = StringField("Token name", validators=[DataRequired(), Length(max=100)])


class KaggleAccountForm(FlaskForm):
    """A Kaggle user name and API key, or an access token (the service checks which was given)."""

    username = StringField(_l("Kaggle user name"), validators=[Optional(), Length(max=64)])
    key = PasswordField(_l("API key"), validators=[Optional(), Length(max=4096)])
    token = PasswordField(_l("or an access token"), validators=[Optional(), Length(max=4096)])


class ConfirmForm(FlaskForm):
    """A bare form: just the CSRF token, for buttons that change state."""

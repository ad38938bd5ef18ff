"""Forms of the account pages; Flask-WTF adds the CSRF token to each."""
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length


class LoginForm(FlaskForm):
    """Email and password."""

    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class TokenForm(FlaskForm):
    """The name of a new API token."""

    name = StringField("Token name", validators=[DataRequired(), Length(max=100)])


class ConfirmForm(FlaskForm):
    """A bare form: just the CSRF token, for buttons that change state."""

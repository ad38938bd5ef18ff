"""The form of a new webhook endpoint."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectMultipleField, StringField, widgets
from wtforms.validators import DataRequired, Length

from app.webhooks import event_types


class EndpointForm(FlaskForm):
    """The URL to send to and the events to send."""

    url = StringField(_l("URL"), validators=[DataRequired(), Length(max=2000)])
    events = SelectMultipleField(_l("Events"), validators=[DataRequired()],
                                 option_widget=widgets.CheckboxInput(), widget=widgets.ListWidget(prefix_label=False))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.events.choices = [(name, name) for name in event_types.names()]

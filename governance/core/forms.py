"""Forms whose work is done by a service: its ValidationError lands on the form's fields."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError


def add_service_errors(form: forms.Form, error: ValidationError) -> None:
    """Put a service's ValidationError on the form: on its fields where the form has them."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for name, errors in error.error_dict.items():
        form.add_error(name if name in form.fields else None, errors)


class ServiceAddForm(forms.Form):
    """An admin add form that creates its object through a service at the end of
    validation (`create`), for `ServiceCreatedAdmin`: the admin then finds it saved, and
    `save()` / `save_m2m()` only hand it over."""

    acting_user = None  # set by the admin (ServiceCreatedAdmin.add_form_user_attr)

    def __init__(self, *args, instance=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance = instance

    def create(self, **cleaned_data):  # pragma: no cover - abstract
        raise NotImplementedError

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            self.instance = self.create(**cleaned)
        except ValidationError as e:
            add_service_errors(self, e)
        return cleaned

    def save(self, commit: bool = True):
        return self.instance

    def save_m2m(self) -> None:
        pass

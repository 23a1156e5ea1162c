"""Forms of the status page's subscription pages (C14)."""

from __future__ import annotations

from django import forms

from incidents.models import Component


class SubscribeForm(forms.Form):
    email = forms.EmailField(max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    components = forms.ModelMultipleChoiceField(
        queryset=Component.objects.select_related("group").order_by("group__position", "position", "name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave all unticked to hear about every component.",
    )

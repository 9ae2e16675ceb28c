import django_filters

from projects.models import APIKey, Membership, Role, Team


class MembershipFilter(django_filters.FilterSet):
    role = django_filters.ChoiceFilter(choices=Role.choices)
    status = django_filters.ChoiceFilter(choices=Membership.Status.choices)

    class Meta:
        model = Membership
        fields = ["role", "status"]


class TeamFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Team
        fields = ["name"]


class APIKeyFilter(django_filters.FilterSet):
    revoked = django_filters.BooleanFilter(field_name="revoked_at", lookup_expr="isnull", exclude=True)
    environment = django_filters.ChoiceFilter(choices=APIKey.Environment.choices)

    class Meta:
        model = APIKey
        fields = ["revoked", "environment"]

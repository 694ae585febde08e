"""Django's login view, and one page."""

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.urls import path


def home(request: HttpRequest) -> HttpResponse:
    """A page of the project itself, next to the dashboard."""
    return HttpResponse(f"shop home for {request.user}")


urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(template_name="login.html")),
    path("", home),
]

from django.http import HttpRequest, HttpResponse


def hello(request: HttpRequest, name: str) -> HttpResponse:
    return HttpResponse(f"hello, {name}")

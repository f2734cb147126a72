from fastapi import FastAPI

app = FastAPI(title="items")

ITEMS = {1: "hammer", 2: "saw"}


@app.get("/")
def index() -> dict[str, str]:
    return {"service": "items"}


@app.get("/items/{item_id}")
def item(item_id: int) -> dict[str, str]:
    return {"name": ITEMS.get(item_id, "unknown")}

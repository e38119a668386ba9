"""Avatars: upload (prepared and cached), list, delete, prepare again."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, UploadFile
from fastapi.responses import JSONResponse

from facecast.server.deps import ERRORS, get_runtime
from facecast.server.models import AvatarCreatedOut, AvatarListOut, AvatarOut, DeletedOut
from facecast.server.runtime import Runtime
from facecast.server.uploads import read_upload

router = APIRouter(prefix="/avatars", tags=["avatars"])


@router.post("", response_model=AvatarCreatedOut, status_code=201, responses=ERRORS,
             summary="Upload an avatar (image or short video)")
async def upload_avatar(file: UploadFile = File(description="Portrait image (JPEG, PNG, WebP, ...) or a short "
                                                            "video (MP4, MOV, WebM, ...); checked by content."),
                        rt: Runtime = Depends(get_runtime)):
    """Prepare an avatar (face mesh on every frame) and cache it. Returns its random id.
    Uploading the same content again returns the existing avatar (200, cached=true)."""
    data = await read_upload(file, rt.settings.max_upload_bytes, "file")
    record, created = await rt.run(rt.avatars.add, data, file.filename)
    return JSONResponse({**record, "cached": not created}, status_code=201 if created else 200)


@router.get("", response_model=AvatarListOut, summary="List avatars")
async def list_avatars(rt: Runtime = Depends(get_runtime)) -> dict:
    """Every avatar, the default first, then newest first."""
    return {"avatars": rt.avatars.list()}


@router.get("/{avatar_id}", response_model=AvatarOut, responses=ERRORS, summary="One avatar")
async def get_avatar(avatar_id: str, rt: Runtime = Depends(get_runtime)) -> dict:
    return rt.avatars.entry(avatar_id)


@router.delete("/{avatar_id}", response_model=DeletedOut, responses=ERRORS, summary="Delete an avatar")
async def delete_avatar(avatar_id: str, rt: Runtime = Depends(get_runtime)) -> dict:
    """Forget an avatar and remove its cached data (the default avatar cannot be deleted: 409)."""
    await rt.run(rt.avatars.delete, avatar_id)
    return {"deleted": avatar_id}


@router.post("/{avatar_id}/prepare", response_model=AvatarOut, responses=ERRORS,
             summary="Prepare an avatar again")
async def reprepare_avatar(avatar_id: str, rt: Runtime = Depends(get_runtime)) -> dict:
    """Force a new preparation from the stored source, replacing the cached one."""
    return await rt.run(rt.avatars.reprepare, avatar_id)

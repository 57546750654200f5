"""Who besides its owner may read a file, from the file's Windows access list (its DACL).

The DACL is read through the Win32 API (advapi32) and its entries compared by SID, never by account name:
names are localised ("Everyone", "Jeder", "Tout le monde") and ``icacls`` output is meant for people.

What counts as "others" follows Win32-OpenSSH's check of a private key (``check_secure_file_permission`` in
contrib/win32/win32compat/w32-sshfileperm.c, called from authfile.c, PowerShell/openssh-portable): an allow
entry for anyone but the user, LocalSystem (S-1-5-18) and the Administrators group (S-1-5-32-544) refuses the
file. OpenSSH refuses such an entry whatever rights it grants; here it must grant a way to read or change the
file (a right to see its ACL or attributes alone is let pass), as the refusal says "read or changed".
SYSTEM and administrators can read any file whatever its ACL says (backup privilege, taking ownership), so an
entry for them grants nothing new; and every file in a user's profile inherits both, so refusing them would
refuse nearly every file. "The user" is the file's owner, as on POSIX (the owner's bits
are the ones that do not count), and the account this process runs as, which reads the file anyway; they
differ when an elevated administrator's files are owned by the Administrators group (a local policy), where
the file ``keys new`` makes grants the user alone.

Deny entries are ignored, as Win32-OpenSSH ignores them: an allow entry refuses the file even when a deny entry
takes it back. That can only refuse a file that is in fact protected (and the fix then makes it plainly so),
never pass a file that is not.

A file with no DACL at all (a NULL DACL, as opposed to an empty one) lets everyone in; the caller refuses it.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

# ACE types (winnt.h; MS-DTYP 2.4.4.1). The object ACE types belong to directory objects, not files; they are
# counted as allow entries all the same, so a file carrying one is refused rather than passed unread.
ACCESS_ALLOWED_ACE_TYPE = 0x00
ACCESS_DENIED_ACE_TYPE = 0x01
ACCESS_ALLOWED_OBJECT_ACE_TYPE = 0x05
ACCESS_ALLOWED_CALLBACK_ACE_TYPE = 0x09  # a conditional allow: counted as an allow, whatever its condition
ACCESS_ALLOWED_CALLBACK_OBJECT_ACE_TYPE = 0x0B
_ALLOW_TYPES = frozenset({ACCESS_ALLOWED_ACE_TYPE, ACCESS_ALLOWED_OBJECT_ACE_TYPE, ACCESS_ALLOWED_CALLBACK_ACE_TYPE,
                          ACCESS_ALLOWED_CALLBACK_OBJECT_ACE_TYPE})
# The types laid out as ACCESS_ALLOWED_ACE (header, mask, SID); an object ACE has flags and GUIDs before its SID.
_PLAIN_LAYOUT_TYPES = frozenset({ACCESS_ALLOWED_ACE_TYPE, ACCESS_DENIED_ACE_TYPE, ACCESS_ALLOWED_CALLBACK_ACE_TYPE,
                                 0x0A})  # 0x0A: ACCESS_DENIED_CALLBACK_ACE_TYPE

# Access rights (winnt.h). FILE_ALL_ACCESS, FILE_GENERIC_READ and icacls' (R), (RX), (M), (F) all include
# FILE_READ_DATA.
FILE_READ_DATA = 0x0001
FILE_WRITE_DATA = 0x0002
FILE_APPEND_DATA = 0x0004
WRITE_DAC = 0x0004_0000
WRITE_OWNER = 0x0008_0000
GENERIC_ALL = 0x1000_0000
GENERIC_WRITE = 0x4000_0000
GENERIC_READ = 0x8000_0000
FILE_GENERIC_READ = 0x0012_0089  # icacls (R)
FILE_ALL_ACCESS = 0x001F_01FF  # icacls (F)
# Reading the key, or changing it (a POSIX group- or world-writable key file is refused too); rewriting the
# DACL or taking ownership is one step from reading. Attribute and READ_CONTROL rights reveal nothing.
_READ_OR_CHANGE = (FILE_READ_DATA | FILE_WRITE_DATA | FILE_APPEND_DATA | WRITE_DAC | WRITE_OWNER | GENERIC_ALL
                   | GENERIC_WRITE | GENERIC_READ)

LOCAL_SYSTEM = "S-1-5-18"
ADMINISTRATORS = "S-1-5-32-544"
EVERYONE = "S-1-1-0"
_TRUSTED = frozenset({LOCAL_SYSTEM, ADMINISTRATORS})
_WELL_KNOWN_NAMES = {
    EVERYONE: "Everyone",
    "S-1-5-11": "Authenticated Users",
    "S-1-5-32-545": "Users",
    "S-1-5-32-546": "Guests",
    "S-1-5-7": "Anonymous Logon",
    "S-1-5-4": "Interactive",
    "S-1-5-2": "Network",
    LOCAL_SYSTEM: "SYSTEM",
    ADMINISTRATORS: "Administrators",
}


class Ace(NamedTuple):
    ace_type: int
    mask: int
    sid: str  # S-R-I-S-S... string form


def readable_by_others(owner_sid: str, aces: Iterable[tuple[int, int, str]], *,
                       user_sid: str | None = None) -> list[str]:
    """The SIDs, in ACL order and each once, that an allow entry lets read or change the file besides its
    owner, ``user_sid`` (the account reading it), SYSTEM and Administrators; empty when it is theirs alone."""
    trusted = _TRUSTED | {owner_sid} | ({user_sid} if user_sid else set())
    others: list[str] = []
    for ace_type, mask, sid in aces:
        granted = ace_type in _ALLOW_TYPES and mask & _READ_OR_CHANGE
        if granted and sid not in trusted and sid not in others:
            others.append(sid)
    return others


def describe_sid(sid: str) -> str:
    """``S-1-5-32-545 (Users)`` for a well-known SID (its English name, whatever the system's language), the
    SID alone otherwise (``icacls FILE`` shows the local name)."""
    name = _WELL_KNOWN_NAMES.get(sid)
    return f"{sid} ({name})" if name else sid


# ---- the Win32 side ----------------------------------------------------------------------------------------
# The ACE layout is plain ctypes, so it is checked on every platform (tests read an ACE built in a buffer); the
# API calls exist on Windows only.


class _AceHeader(ctypes.Structure):
    _fields_ = [("AceType", ctypes.c_ubyte), ("AceFlags", ctypes.c_ubyte), ("AceSize", ctypes.c_ushort)]


class _PlainAce(ctypes.Structure):
    """ACCESS_ALLOWED_ACE (and the denied and callback types, laid out alike): the SID starts at SidStart."""

    _fields_ = [("Header", _AceHeader), ("Mask", ctypes.c_uint32), ("SidStart", ctypes.c_uint32)]


class _AclSizeInformation(ctypes.Structure):
    _fields_ = [("AceCount", ctypes.c_uint32), ("AclBytesInUse", ctypes.c_uint32),
                ("AclBytesFree", ctypes.c_uint32)]


def _ace_at(address: int) -> tuple[int, int, int | None]:
    """(type, mask, address of its SID) of the ACE at ``address``; the SID's address is None for an ACE not laid
    out as ACCESS_ALLOWED_ACE (an object ACE's SID follows flags and GUIDs)."""
    ace = _PlainAce.from_address(address)
    ace_type, mask = int(ace.Header.AceType), int(ace.Mask)
    if ace_type not in _PLAIN_LAYOUT_TYPES:
        return ace_type, mask, None
    return ace_type, mask, address + _PlainAce.SidStart.offset


if sys.platform == "win32":
    from ctypes import wintypes

    _SE_FILE_OBJECT = 1  # SE_OBJECT_TYPE
    _OWNER_SECURITY_INFORMATION = 0x1
    _DACL_SECURITY_INFORMATION = 0x4
    _ACL_SIZE_INFORMATION_CLASS = 2  # ACL_INFORMATION_CLASS: AclRevisionInformation = 1, AclSizeInformation
    _TOKEN_QUERY = 0x0008
    _TOKEN_USER_CLASS = 1  # TOKEN_INFORMATION_CLASS: TokenUser

    _advapi32 = ctypes.WinDLL("advapi32", use_last_error=True)
    _kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)

    _GetNamedSecurityInfoW = _advapi32.GetNamedSecurityInfoW
    _GetNamedSecurityInfoW.argtypes = [
        wintypes.LPCWSTR, ctypes.c_int, wintypes.DWORD,
        ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p),  # owner, group
        ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p),  # DACL, SACL
        ctypes.POINTER(ctypes.c_void_p),  # the security descriptor, freed with LocalFree
    ]
    _GetNamedSecurityInfoW.restype = wintypes.DWORD  # an error code, not a BOOL
    _GetAclInformation = _advapi32.GetAclInformation
    _GetAclInformation.argtypes = [ctypes.c_void_p, ctypes.c_void_p, wintypes.DWORD, ctypes.c_int]
    _GetAclInformation.restype = wintypes.BOOL
    _GetAce = _advapi32.GetAce
    _GetAce.argtypes = [ctypes.c_void_p, wintypes.DWORD, ctypes.POINTER(ctypes.c_void_p)]
    _GetAce.restype = wintypes.BOOL
    _ConvertSidToStringSidW = _advapi32.ConvertSidToStringSidW
    _ConvertSidToStringSidW.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
    _ConvertSidToStringSidW.restype = wintypes.BOOL
    _OpenProcessToken = _advapi32.OpenProcessToken
    _OpenProcessToken.argtypes = [wintypes.HANDLE, wintypes.DWORD, ctypes.POINTER(wintypes.HANDLE)]
    _OpenProcessToken.restype = wintypes.BOOL
    _GetTokenInformation = _advapi32.GetTokenInformation
    _GetTokenInformation.argtypes = [wintypes.HANDLE, ctypes.c_int, ctypes.c_void_p, wintypes.DWORD,
                                     ctypes.POINTER(wintypes.DWORD)]
    _GetTokenInformation.restype = wintypes.BOOL
    _GetCurrentProcess = _kernel32.GetCurrentProcess
    _GetCurrentProcess.argtypes = []
    _GetCurrentProcess.restype = wintypes.HANDLE
    _CloseHandle = _kernel32.CloseHandle
    _CloseHandle.argtypes = [wintypes.HANDLE]
    _CloseHandle.restype = wintypes.BOOL
    _LocalFree = _kernel32.LocalFree
    _LocalFree.argtypes = [ctypes.c_void_p]
    _LocalFree.restype = ctypes.c_void_p

    def _sid_string(sid: int | None) -> str:
        if not sid:
            raise OSError("no SID where one belongs (a file without an owner?)")
        text = ctypes.c_void_p()
        if not _ConvertSidToStringSidW(sid, ctypes.byref(text)):
            raise ctypes.WinError(ctypes.get_last_error())
        try:
            return ctypes.wstring_at(text.value) if text.value else ""
        finally:
            _LocalFree(text)

    def process_user_sid() -> str:
        """The SID of the account this process runs as (its token's user); ``OSError`` when unreadable."""
        token = wintypes.HANDLE()
        if not _OpenProcessToken(_GetCurrentProcess(), _TOKEN_QUERY, ctypes.byref(token)):
            raise ctypes.WinError(ctypes.get_last_error())
        try:
            needed = wintypes.DWORD()
            _GetTokenInformation(token, _TOKEN_USER_CLASS, None, 0, ctypes.byref(needed))  # fails, with the size
            buffer = ctypes.create_string_buffer(needed.value)
            if not _GetTokenInformation(token, _TOKEN_USER_CLASS, buffer, needed, ctypes.byref(needed)):
                raise ctypes.WinError(ctypes.get_last_error())
            # TOKEN_USER starts with SID_AND_ATTRIBUTES, which starts with the PSID (pointing into the buffer).
            return _sid_string(ctypes.c_void_p.from_buffer(buffer).value)
        finally:
            _CloseHandle(token)

    def owner_and_dacl(path: Path) -> tuple[str, list[Ace] | None]:
        """The file's owner SID and its DACL's entries, None for a NULL DACL (everyone has full access);
        ``OSError`` when they cannot be read."""
        owner, dacl, descriptor = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
        error = _GetNamedSecurityInfoW(str(path), _SE_FILE_OBJECT,
                                       _OWNER_SECURITY_INFORMATION | _DACL_SECURITY_INFORMATION,
                                       ctypes.byref(owner), None, ctypes.byref(dacl), None, ctypes.byref(descriptor))
        if error:
            raise ctypes.WinError(error)
        try:  # owner and dacl point into the descriptor: read everything before freeing it
            owner_sid = _sid_string(owner.value)
            if not dacl.value:
                return owner_sid, None
            size = _AclSizeInformation()
            if not _GetAclInformation(dacl, ctypes.byref(size), ctypes.sizeof(size), _ACL_SIZE_INFORMATION_CLASS):
                raise ctypes.WinError(ctypes.get_last_error())
            aces: list[Ace] = []
            for index in range(size.AceCount):
                ace = ctypes.c_void_p()
                if not _GetAce(dacl, index, ctypes.byref(ace)) or not ace.value:
                    raise ctypes.WinError(ctypes.get_last_error())
                ace_type, mask, sid_address = _ace_at(ace.value)
                sid = _sid_string(sid_address) if sid_address else f"(an ACE of type {ace_type})"
                aces.append(Ace(ace_type, mask, sid))
            return owner_sid, aces
        finally:
            _LocalFree(descriptor)

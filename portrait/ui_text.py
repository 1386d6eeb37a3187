"""Every string the page shows, in one table: key -> (Chinese, English)."""

from __future__ import annotations

TEXT: dict[str, tuple[str, str]] = {
    "title": ("# 📸 人像写真工作室", "# 📸 Portrait Studio"),
    "subtitle": (
        "上传一张单人照片，写一句提示词或选一个风格，生成保留本人相貌的写真照片（302.AI 图生图3.0-人像写真）。",
        "Upload a photo of one person, write a prompt or pick a style, and get portraits that keep "
        "that person's face (302.AI Portrait API).",
    ),
    "offline_banner": (
        "⚠️ 离线模拟模式：未设置 AI302_API_KEY，所有图片都由本地模拟器生成并标有“SIMULATED”，不是真实模型结果。"
        "设置 AI302_API_KEY 后重启即可调用真实 API。",
        "⚠️ Offline simulator mode: no AI302_API_KEY is set, so every image comes from the built-in "
        "simulator and is stamped SIMULATED — not a real result. Set AI302_API_KEY and restart to use the real API.",
    ),
    "lang_switch": ("English", "中文"),
    # Tabs carry both languages: Gradio 6.31 does not relabel a tab not yet opened on a switch.
    "tab_create": ("生成 / Create", "生成 / Create"),
    "tab_history": ("历史记录 / History", "历史记录 / History"),
    "photo": ("人物照片", "Photo of the person"),
    "photo_url": ("或填写照片网址", "…or a photo URL"),
    "photo_url_ph": ("https://example.com/me.jpg", "https://example.com/me.jpg"),
    "tips_title": ("💡 怎样的照片效果最好", "💡 What makes a good photo"),
    "photo_tips": (
        "**拍照小贴士**：画面中只有一个人；正脸或微侧脸、五官清晰；不要裁得太紧，露出头发和肩膀；光线均匀，不戴墨镜。",
        "**Tips for a good photo**: one person only; face clearly visible, frontal or slightly turned; "
        "not tightly cropped — show hair and shoulders; even light, no sunglasses.",
    ),
    "sent_photo": ("将要发送的照片", "Photo as it will be sent"),
    "style": ("风格预设", "Style preset"),
    "style_none": ("（不使用风格）", "(no style)"),
    "idea": ("你的描述", "Your idea"),
    "idea_ph": ("例如：穿白衬衫，在咖啡馆里微笑", "e.g. wearing a white shirt, smiling in a café"),
    "prompt": ("最终提示词（可编辑，原样发送）", "Final prompt (editable, sent as is)"),
    "prompt_info": (
        "留空时 API 使用“全参考”模式：保留照片中的人物、服装和背景。",
        "Empty: the API uses full-reference mode and keeps the person, clothing and background of the photo.",
    ),
    "size": ("尺寸", "Size"),
    "aspect": ("画幅", "Aspect"),
    "aspect_custom": ("自定义", "Custom"),
    "width": ("宽度（像素）", "Width (px)"),
    "height": ("高度（像素）", "Height (px)"),
    "retouch": ("修饰", "Retouching"),
    "gpen": ("人脸修复强度 gpen", "Face restoration (gpen)"),
    "gpen_info": ("越高五官越清晰锐利（GPEN 模型）", "Higher = sharper, restored facial detail (GPEN)"),
    "skin": ("磨皮强度 skin", "Skin smoothing (skin)"),
    "skin_info": ("越高皮肤越光滑", "Higher = smoother skin"),
    "skin_unifi": ("肤色统一 skin_unifi", "Skin tone unification (skin_unifi)"),
    "skin_unifi_info": ("越高肤色越均匀", "Higher = more even skin tone"),
    "gen_mode": ("生成模式 gen_mode", "Generation mode (gen_mode)"),
    "gen_mode_auto": (
        "自动：有提示词用 creative，无提示词用 reference",
        "auto: creative with a prompt, reference without",
    ),
    "gen_mode_creative": (
        "creative：按提示词创作，只取照片中人物的性别",
        "creative: follow the prompt; only the gender is taken",
    ),
    "gen_mode_reference": (
        "reference：全参考，保留人物、服装、发型与背景",
        "reference: full reference — person, clothing, hairstyle and background",
    ),
    "gen_mode_reference_char": (
        "reference_char：人物参考，保留人物特征但不保留背景",
        "reference_char: character reference — the person's look, not the background",
    ),
    "seed": ("种子 seed（-1 为随机）", "Seed (-1 = random)"),
    "seed_random": ("🎲 随机", "🎲 Random"),
    "seed_last": ("♻️ 用上次的种子", "♻️ Last seed"),
    "variations": ("一次生成张数", "Images per click"),
    "variations_info": ("同时发送，种子各不相同", "Sent at the same time, each with its own seed"),
    "own_key": ("🔑 使用你自己的 302.AI 密钥（可选）", "🔑 Use your own 302.AI key (optional)"),
    "own_key_label": ("你的 API 密钥", "Your API key"),
    "own_key_info": (
        "只用于你这次的请求，不会保存、记录或显示给任何人；使用自己的密钥时不受本应用的次数限制。",
        "Used only for your own requests: never saved, logged or shown to anyone. "
        "With your own key this app's limits do not apply.",
    ),
    "generate": ("✨ 生成写真", "✨ Generate portraits"),
    "sheet_title": ("🗂 风格对照：一张照片，多种风格", "🗂 Style sheet: one photo in many styles"),
    "sheet_help": (
        "勾选风格，一键用同一张照片、同一个种子生成每种风格，结果拼成一张带标签的对照图，可下载 PNG 和含全部原图的 ZIP。"
        "使用上面的照片、你的描述和修饰设置；尺寸取各风格的推荐值。",
        "Tick styles and render the photo in each of them with one seed, as one labelled sheet you can "
        "download as PNG, plus a ZIP of every full-size image. Uses the photo, your idea and the "
        "retouching settings above; sizes come from each style.",
    ),
    "sheet_all": ("全选", "Select all"),
    "sheet_none": ("清空", "Clear"),
    "sheet_go": ("🗂 生成风格对照图", "🗂 Generate style sheet"),
    "sheet_pick": ("请至少勾选一个风格。", "Tick at least one style."),
    "sheet_image": ("风格对照图", "Style sheet"),
    "downloads": ("下载", "Downloads"),
    "code_title": ("</> 以代码复现这次请求", "</> This request as code"),
    "code_help": (
        "与实际发送的请求逐字节相同（含实际使用的种子和照片网址）；密钥写作 $AI302_API_KEY。",
        "Byte for byte the request that was sent (with the seed and photo URL actually used); "
        "the key is written as $AI302_API_KEY.",
    ),
    "results": ("生成结果", "Portraits"),
    "run_info_empty": (
        "结果会显示在这里，并自动保存到输出文件夹。",
        "Results show here and are saved to the output folder.",
    ),
    "reuse": ("↩️ 复用这些设置", "↩️ Reuse these settings"),
    "history_table": ("过往生成（最新在前）", "Past runs (newest first)"),
    "history_images": ("所选记录的图片", "Images of the selected run"),
    "history_refresh": ("🔄 刷新", "🔄 Refresh"),
    "history_reuse": ("↩️ 复用所选记录的设置", "↩️ Reuse the selected run's settings"),
    "history_empty": ("还没有记录。", "No runs yet."),
    "col_time": ("时间 (UTC)", "Time (UTC)"),
    "col_style": ("风格", "Style"),
    "col_prompt": ("提示词", "Prompt"),
    "col_size": ("尺寸", "Size"),
    "col_seeds": ("种子", "Seeds"),
    "col_images": ("张数", "Images"),
    "col_run": ("记录", "Run"),
    "no_photo": ("请先上传照片或填写照片网址。", "Please upload a photo or enter a photo URL first."),
    "unexpected": (
        "发生了意外错误，已记录在服务器日志中，请重试。",
        "An unexpected error happened; it is in the server log. Please try again.",
    ),
    "partial": ("{n} 张生成失败：", "{n} image(s) failed: "),
    "done": ("完成", "Done"),
    "simulated_tag": ("模拟结果", "SIMULATED"),
    "reused": ("已恢复这些设置。", "Settings restored."),
    "error_title": ("出错了", "Error"),
    "progress_preparing": ("正在处理照片…", "Preparing the photo…"),
    "progress_generating": ("正在生成（每张约 20 秒）…", "Generating (about 20 s per image)…"),
    "progress_saving": ("正在保存…", "Saving…"),
    "progress_done": ("完成", "Done"),
}


def text(key: str, lang: str) -> str:
    """One string in the given language ('zh...' -> Chinese, anything else -> English)."""
    zh, en = TEXT[key]
    return zh if is_chinese(lang) else en


def is_chinese(lang: str | None) -> bool:
    """True for a Chinese locale code such as 'zh', 'zh-CN', 'zh-Hans' or 302.AI's 'cn'."""
    return bool(lang) and lang.lower().startswith(("zh", "cn"))


def translations() -> dict[str, dict[str, str]]:
    """The table as gr.I18n wants it: {locale: {key: text}}."""
    zh = {k: v[0] for k, v in TEXT.items()}
    en = {k: v[1] for k, v in TEXT.items()}
    return {"en": en, "zh": zh, "zh-CN": zh}
